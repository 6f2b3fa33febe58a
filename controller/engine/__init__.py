"""The imperative engine: applies plans and runs the loop, talking only to ports (Protocols), never to adapters."""
