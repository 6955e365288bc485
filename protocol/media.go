package protocol

// BodyMedia is the body type of a message carrying an uploaded file
// (POST /v1/media); Body.Text is its optional caption.
const BodyMedia = "media"

// Media describes an uploaded file inside a media message body. A client
// sending one sets only ID (from the upload's response); the broker checks
// the upload is the sender's and fills in the rest from what it stored.
type Media struct {
	ID     string `json:"id"`
	Type   string `json:"type,omitempty"`  // content type sniffed from the bytes
	Name   string `json:"name,omitempty"`  // sanitised file name
	Size   int64  `json:"size"`            // bytes of the original
	Width  int    `json:"w,omitempty"`     // images: upright width in pixels
	Height int    `json:"h,omitempty"`     // images: upright height in pixels
	Thumb  []byte `json:"thumb,omitempty"` // images: JPEG thumbnail (base64 in JSON), longest side <= 128 px, <= 5 KB
}
