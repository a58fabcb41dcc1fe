"""Command-line commands that are not the bot: `check`, `status`, `migrate`, `import-legacy`."""
