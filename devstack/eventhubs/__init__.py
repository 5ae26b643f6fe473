"""An Event Hubs-compatible AMQP 1.0 endpoint for development and tests (not for production).

`python -m devstack.eventhubs` serves the hubs of a JSON config (Microsoft emulator Config.json shape) on
127.0.0.1:5672 so the unmodified azure-eventhub SDK works locally with `UseDevelopmentEmulator=true`.
"""
