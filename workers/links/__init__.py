"""Branded links: a registry of short links, their redirect, and the click event each redirect makes.

- `model`: a link and the checks every write of one passes (each bad field named).
- `registry`: links in Azure Table storage (Azurite locally), keyed by (branded domain, slug).
- `cache`: the redirect's in-process read cache (short TTL, unknown slugs cached too).
- `redirect`: GET/HEAD https://<domain>/<slug> → the link's status and Location, and a `_link_click`
  event made through the collector's privacy step and hub producer.
- `spool`: clicks the hub did not acknowledge within the redirect's deadline, kept in Blob storage and
  drained into the hub, in order, by a timer function.
- `api`: the management API (/api/links…), signed with the app's server key.
- `columns`: the lake columns capture fills from a click event's routing data.

See the README's "Branded links" section and docs/deploy.md for the routing at the domain's root.
"""
