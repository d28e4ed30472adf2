"""Pandera contracts of every table that crosses a csxa stage."""
