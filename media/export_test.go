package media

// MetadataPNG, MetadataGIF and MetadataWebP are metadataPNG, metadataGIF
// and metadataWebP for the external tests.
var (
	MetadataPNG  = metadataPNG
	MetadataGIF  = metadataGIF
	MetadataWebP = metadataWebP
)
