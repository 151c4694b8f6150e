"""Commands: parse arguments, call a function elsewhere, print."""
