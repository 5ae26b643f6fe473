"""A small Azure Functions host for development: runs the project's own function_app.py unchanged.

Azure Functions Core Tools cannot be installed on these machines (their npm package downloads a
binary from a CDN). This host reads the app's registered functions and their bindings the way the real
host reads function metadata, then serves each trigger as the platform would:

- `index`: the app's functions and bindings, host.json (with its app-setting overrides), retry
  policies and the .NET TimeSpans they are written in; how a function is invoked.
- `http`: HTTP triggers on aiohttp under host.json's routePrefix, X-Forwarded-For as the front end
  sets it.
- `eventhub`: Event Hubs triggers fed from an azure-eventhub consumer in batches shaped by host.json,
  checkpointed in the host's storage only after the function succeeded.
- `timer`: timer triggers on six-field NCRONTAB schedules.
- `devhost`: one host running all of them, recording each trigger's state in a status file
  (devstack/status.py); `python -m devstack.host` (`__main__`) starts it.

Nothing in function_app.py, functions/ or workers/ knows which host runs it.
"""
