"""The delivery channels: one module per channel, all shaped by ``base.Channel``."""
