"""The channels this deployment has, built from the settings: e-mail and in-app always; push when an FCM project and
an access token (or a token provider) are given; SMS when a Twilio account, token and sender are given."""

from __future__ import annotations

from config.settings import Settings
from notifications.channels.base import Channel
from notifications.channels.email import SmtpEmailChannel
from notifications.channels.in_app import InAppChannel
from notifications.channels.push import FcmPushChannel, TokenProvider
from notifications.channels.sms import TwilioSmsChannel
from notifications.inbox import InboxStore
from schemas.events import Channel as ChannelName


def configured_channels(
    settings: Settings, inbox: InboxStore, *, fcm_token_provider: TokenProvider | None = None
) -> dict[ChannelName, Channel]:
    s = settings
    channels: dict[ChannelName, Channel] = {
        ChannelName.email: SmtpEmailChannel.from_settings(s),
        ChannelName.in_app: InAppChannel(inbox),
    }
    if s.fcm_project_id and (s.fcm_access_token is not None or fcm_token_provider is not None):
        channels[ChannelName.push] = FcmPushChannel.from_settings(s, fcm_token_provider)
    if s.twilio_account_sid and s.twilio_auth_token and (s.twilio_from_number or s.twilio_messaging_service_sid):
        channels[ChannelName.sms] = TwilioSmsChannel.from_settings(s)
    return channels
