package hwaccel

import (
	"regexp"
	"strings"
)

// knownFailures maps encoder and framework error messages to what they mean
// for the operator. Order matters: specific messages come before the generic
// ones they often appear with ("Device creation failed" follows most
// hardware errors). Sources: HWACCEL.md §6, observed on FFmpeg 5.1 and
// GStreamer 1.22 where marked there.
var knownFailures = []struct {
	re     *regexp.Regexp
	reason string // may use $1 for the first group
}{
	{regexp.MustCompile(`Cannot load libcuda\.so\.1|Could not dynamically load CUDA`), "no NVIDIA driver (libcuda.so.1 cannot be loaded)"},
	{regexp.MustCompile(`Cannot load libnvidia-encode\.so\.1`), "NVENC runtime missing (libnvidia-encode.so.1 cannot be loaded)"},
	{regexp.MustCompile(`minimum required Nvidia driver|required nvenc API version`), "NVIDIA driver too old for this FFmpeg's NVENC API"},
	{regexp.MustCompile(`OpenEncodeSessionEx failed: unsupported device`), "GPU has no NVENC engine"},
	{regexp.MustCompile(`OpenEncodeSessionEx failed: out of memory|No free encoding session|INCOMPATIBLE_CLIENT_KEY|incompatible client key`), "NVENC session limit reached or GPU out of memory"},
	{regexp.MustCompile(`No (NVENC )?capable devices found`), "no NVENC device can encode this codec at this size (H.264 stops at 4096)"},
	{regexp.MustCompile(`Failed to initialise VAAPI connection|No VA display found|vaInitialize failed|va_openDriver\(\) returns`), "no working VA-API device or driver"},
	{regexp.MustCompile(`Error (creating|initializing) an? (internal )?MFX session|MFX session`), "no Intel QSV runtime or GPU"},
	{regexp.MustCompile(`Could not find a valid device`), "no V4L2 M2M encoder device"},
	{regexp.MustCompile(`cannot create compression session`), "VideoToolbox refused the session"},
	{regexp.MustCompile(`Unknown encoder '([^']+)'`), "this ffmpeg has no encoder $1"},
	{regexp.MustCompile(`Unknown input format:? '?decklink'?|Unknown format 'decklink'`), "this ffmpeg was built without DeckLink support"},
	{regexp.MustCompile(`No such filter: '([^']+)'`), "this ffmpeg has no filter $1"},
	{regexp.MustCompile(`Unrecognized option '([^']+)'|Option '?([^' ]+)'? not found`), "this ffmpeg does not know the option $1$2"},
	{regexp.MustCompile(`\[rtp[^\]]*\].*Unsupported codec|Unsupported codec \w+ for RTP`), "the RTP muxer cannot packetize this codec"},
	{regexp.MustCompile(`No such element or plugin '([^']+)'|no element "([^"]+)"`), "GStreamer element $1$2 is not registered (plugin missing or no device behind it)"},
	{regexp.MustCompile(`Device creation failed`), "hardware device could not be opened"},
	{regexp.MustCompile(`Cannot open video device|Could not open device|Cannot find device`), "capture device cannot be opened"},
	{regexp.MustCompile(`(?i)out of memory|Cannot allocate memory`), "out of memory"},
	{regexp.MustCompile(`Error while opening encoder|Error initializing output stream|Could not open encoder`), "the encoder refused the parameters"},
}

// classify explains a failed command from its output; "" when nothing in
// the table matches.
func classify(lines []string) string {
	text := strings.Join(lines, "\n")
	for _, k := range knownFailures {
		if m := k.re.FindStringSubmatchIndex(text); m != nil {
			return string(k.re.ExpandString(nil, k.reason, text, m))
		}
	}
	return ""
}

// lastLine is the fallback reason: the last thing the tool said.
func lastLine(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}
