"""The maggma pipeline: builders, stores, a local MongoDB-protocol server and the atomate add-on."""
