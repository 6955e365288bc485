package protocol

// BodyShredded is the body type of a message whose content an operator
// destroyed by deleting its conversation's data key (crypto-shredding, see
// docs/ARCHITECTURE.md). The body has no other fields; the message keeps its
// seq and ids. Stores return storage.ShreddedBody, which is this.
const BodyShredded = "shredded"
