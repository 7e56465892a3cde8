// Package hwaccel turns a configuration into encoder pipelines (FFmpeg or
// GStreamer command lines), probes which of them work on this machine and
// supervises the encoder process.
//
// Backends are data: each one is an embedded YAML file under backends/ whose
// text/template snippets render to argv (never through a shell). One process
// captures once, converts and scales on the hardware where it can, and encodes
// every layer (main, preview) at once. Each layer leaves the process either on
// a pipe (fd 3 for the first layer, fd 4 for the second, ...) as Annex-B, IVF
// or AV1 OBUs, or as RTP to a UDP port on 127.0.0.1; [Output] tells the reader
// which.
//
// The package imports none of whipgate's packages.
package hwaccel
