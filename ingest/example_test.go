package ingest_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"

	"whipgate/gateway"
	"whipgate/ingest"
)

// One publication fed by two transports: the 8K main layer as H.265 from
// an encoder's pipe, the preview as H.264 RTP from GStreamer, whose rtpbin
// takes PLIs on port 5003. Keyframe requests for the preview become PLIs;
// those for the main layer go to the encoder's own control, if it has one.
func Example_mixedTransports() {
	log := slog.New(slog.DiscardHandler)
	hub := gateway.NewHub(gateway.Config{}, log)
	defer hub.Close()

	main, err := ingest.NewPipeReader(ingest.PipeConfig{Layer: "main", Codec: gateway.H265, FPS: 60}, log)
	if err != nil {
		panic(err)
	}
	preview, err := ingest.NewRTPReceiver(ingest.RTPConfig{Layer: "preview", Codec: gateway.H264, RTCPPort: 5003}, log)
	if err != nil {
		panic(err)
	}
	defer preview.Close()

	pub, err := hub.Publish("box", []gateway.TrackInfo{
		{Name: "main", Codec: gateway.H265},
		{Name: "preview", Codec: gateway.H264},
	}, gateway.PublishOptions{Kind: "pipe", Takeover: true})
	if err != nil {
		panic(err)
	}
	defer pub.Close()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	// The encoder supervisor calls this with the pipe of each encoder it
	// starts; the reader keeps the layer's RTP continuous across restarts.
	onEncoderStart := func(stdout io.Reader) {
		if err := main.Ingest(ctx, stdout, pub, 0); err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("main layer ended", "err", err)
		}
	}
	wg.Go(func() { onEncoderStart(eofReader{}) })
	wg.Go(func() { _ = preview.Run(ctx, pub, 1) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case i := <-pub.KeyframeRequests():
				if i == 1 {
					_ = preview.RequestKeyframe()
				}
			}
		}
	})
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
