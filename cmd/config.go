package cmd

import "whipgate/cmd/config"

// The configuration is package config's; these names stay in cmd because
// Start takes a Config, and the callers of Start (integration's tests,
// which build a Config with Streams for each gateway they start) should
// need only this package. Nothing else of config is repeated here.

// Config is what Start runs: config.Config.
type Config = config.Config

// StreamConfig is one entry of Config.Streams: config.StreamConfig.
type StreamConfig = config.StreamConfig

// LoadConfig reads a YAML file strictly, as config.Load does.
func LoadConfig(path string) (Config, error) { return config.Load(path) }

// DefaultConfig is what runs with no config file, as config.Default is.
func DefaultConfig() Config { return config.Default() }
