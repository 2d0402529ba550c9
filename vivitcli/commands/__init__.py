"""One module per subcommand. Each defines `command`; heavy imports stay inside it."""
