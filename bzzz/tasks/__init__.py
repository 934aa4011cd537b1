"""Task sources and mirrors: the adapters behind `services.ports.TaskSource` and
`services.ports.TaskMirror` (a local folder, GitHub, a Hive API)."""
