"""Gamification (PRODUCT.md §7): XP rules, levels and achievements, as pure functions over a student's record."""
