"""Renderers: one module per command and format (text, JSON), as Terraform's internal/command/views."""
