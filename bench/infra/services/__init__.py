"""One module per service ``bench up`` manages, each a :class:`bench.infra.service.Service`."""
