"""Execution adapters (issue 20): reasoning backends (Ollama's API, OpenAI-compatible
servers, replay) and sandboxes (bubblewrap, unsandboxed), behind the ports
`services.ports.Reasoner` and `services.ports.Sandbox`."""
