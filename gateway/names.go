package gateway

import "fmt"

// The name rules. A stream name ends up in URL paths (/whip/{stream}),
// logs, metrics labels and the state file; a layer name in URL paths,
// SDP (as a simulcast rid) and RTP header extensions. Both are checked
// where names enter the hub, so nothing downstream meets another kind.

// maxStreamName and maxLayerName bound the names' lengths in bytes.
const (
	maxStreamName = 255
	// RFC 8851 leaves a rid-id's length open, but RFC 8852 carries it in
	// an RTP header extension whose one-byte form holds 16 bytes.
	maxLayerName = 16
)

// nameError is a name that breaks its rule. Its message names the rule;
// it matches ErrBadName.
type nameError struct {
	what, name, rule string
}

func (e *nameError) Error() string        { return fmt.Sprintf("%s %q: %s", e.what, e.name, e.rule) }
func (e *nameError) Is(target error) bool { return target == ErrBadName }

// ValidStreamName accepts 1 to 255 letters, digits and -_.~ (the
// characters a URL path segment carries unescaped, RFC 3986 "unreserved").
// Its error matches ErrBadName.
func ValidStreamName(name string) error { return ValidID("stream name", name) }

// ValidID holds another identifier that ends up where stream names do (an
// egress id: URL paths, metrics labels, the state file) to the stream-name
// rule; its error names it as what.
func ValidID(what, name string) error {
	if name == "" || len(name) > maxStreamName {
		return &nameError{what, name, "must be 1 to 255 characters"}
	}
	for i := range len(name) {
		if c := name[i]; !isAlnum(c) && c != '-' && c != '_' && c != '.' && c != '~' {
			return &nameError{what, name, "only letters, digits and -_.~ are allowed"}
		}
	}
	return nil
}

// ValidLayerName accepts a layer name: an RFC 8851 rid-id of 1 to 16
// ASCII letters, digits, - and _. Layer names such as "main", "preview"
// and "audio" follow the same rule as simulcast rids, so that any layer
// can be offered as one. Its error matches ErrBadName.
func ValidLayerName(name string) error {
	if name == "" || len(name) > maxLayerName {
		return &nameError{"layer name", name, "must be 1 to 16 characters (RFC 8851 rid-id)"}
	}
	for i := range len(name) {
		if c := name[i]; !isAlnum(c) && c != '-' && c != '_' {
			return &nameError{"layer name", name, "only letters, digits, - and _ are allowed (RFC 8851 rid-id)"}
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
