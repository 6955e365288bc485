package media

// MetadataPNG and MetadataWebP are metadataPNG and metadataWebP for the
// external tests.
var (
	MetadataPNG  = metadataPNG
	MetadataWebP = metadataWebP
)
