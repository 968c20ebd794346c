import os

# pygame prints a banner on import; devices log to journald, which does not want it.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
