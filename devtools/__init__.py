"""Developer tooling: the local Kafka broker and its TLS material, progress bars, the Grafana
dashboards generator and the README results renderer. Used by ``bench``, ``evaluation`` and the CLI;
not part of the detector service."""
