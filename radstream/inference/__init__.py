"""The model: its repository, a local Triton server, and the client that talks to Triton."""
