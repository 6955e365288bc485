package media

// MetadataPNG is metadataPNG for the external tests.
var MetadataPNG = metadataPNG
