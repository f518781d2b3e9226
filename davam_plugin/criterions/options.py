"""Start-up checks of criterion options (fairseq prints a ``SystemExit`` as one line)."""


def check_non_negative(*flag_values) -> None:
    """``check_non_negative(("--beta-max", 5.0), ...)``: exit with one line naming the first
    flag whose value is below 0."""
    for flag, value in flag_values:
        if value < 0:
            raise SystemExit(f"error: {flag} must be >= 0, got {value}")
