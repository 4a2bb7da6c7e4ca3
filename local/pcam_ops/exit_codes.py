"""The `pcam` command's exit codes."""

# Exit codes: 0 done; 1 problems found, or a change refused (the message says why); 2 a usage error (argparse's
# own code); 3 the stack cannot be reached.
PROBLEMS, USAGE, UNREACHABLE = 1, 2, 3
