"""The `qnode` command. Each subcommand lives in its own module ``cmd_<name>.py``."""
