"""Typer command groups. Each module is thin: parse options, call the logic, render the result."""
