"""Domain logic with no I/O: signal maths, streak rules, scoring, intervention policy."""
