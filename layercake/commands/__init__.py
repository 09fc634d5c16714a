"""One module per topic; each lists its click commands in ``COMMANDS`` (see layercake.cli)."""
