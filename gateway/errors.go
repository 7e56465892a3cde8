package gateway

import "errors"

var (
	// ErrNotFound means no stream of that name is known.
	ErrNotFound = errors.New("stream not found")
	// ErrNoPublisher means the stream is known but nothing is publishing into it now.
	ErrNoPublisher = errors.New("stream has no live publisher")
	// ErrNoTrack means the stream has no track (layer) of that name.
	ErrNoTrack = errors.New("no such layer")
	// ErrStreamBusy means another publisher is live on the stream.
	ErrStreamBusy = errors.New("stream already has a live publisher")
	// ErrUnsupportedCodec means the hub does not forward that codec.
	ErrUnsupportedCodec = errors.New("unsupported codec")
	// ErrBadTracks means a publication's track list is unusable.
	ErrBadTracks = errors.New("invalid track list")
	// ErrBadName means a stream or layer name breaks its rule (see
	// ValidStreamName and ValidLayerName).
	ErrBadName = errors.New("invalid name")
	// ErrClosed means the subscription, publication or hub was closed.
	ErrClosed = errors.New("closed")
	// ErrReplaced means a newer publisher took the stream over.
	ErrReplaced = errors.New("replaced by a newer publisher")
	// ErrCodecChanged means a new publisher changed a track's codec, so a
	// subscriber negotiated for the old one cannot decode it.
	ErrCodecChanged = errors.New("publisher changed the codec of a subscribed track")
)
