package h264synth

import (
	"fmt"
	"math"
)

// levelLimit is one row of Table A-1 of the H.264 spec, for the limits that
// depend on the picture size and rate.
type levelLimit struct {
	idc     int // level_idc: 10 × level number
	maxMBPS int // macroblocks per second
	maxFS   int // macroblocks per frame
	maxDPB  int // MaxDpbMbs
	maxBR   int // kbit/s for Baseline (cpbBrVclFactor 1000)
}

// levelTable is Table A-1 without level 1b, which Baseline can only signal
// through constraint_set3_flag and nothing here needs.
var levelTable = [...]levelLimit{
	{10, 1485, 99, 396, 64},
	{11, 3000, 396, 900, 192},
	{12, 6000, 396, 2376, 384},
	{13, 11880, 396, 2376, 768},
	{20, 11880, 396, 2376, 2000},
	{21, 19800, 792, 4752, 4000},
	{22, 20250, 1620, 8100, 4000},
	{30, 40500, 1620, 8100, 10000},
	{31, 108000, 3600, 18000, 14000},
	{32, 216000, 5120, 20480, 20000},
	{40, 245760, 8192, 32768, 20000},
	{41, 245760, 8192, 32768, 50000},
	{42, 522240, 8704, 34816, 50000},
	{50, 589824, 22080, 110400, 135000},
	{51, 983040, 36864, 184320, 240000},
	{52, 2073600, 36864, 184320, 240000},
	{60, 4177920, 139264, 696320, 240000},
	{61, 8355840, 139264, 696320, 480000},
	{62, 16711680, 139264, 696320, 800000},
}

// chooseLevel returns the lowest level_idc whose limits admit a picture of
// mbW×mbH macroblocks at fps frames per second with one reference frame and
// a bit rate of at most kbps.
func chooseLevel(mbW, mbH, fps, kbps int) (int, error) {
	fs := mbW * mbH
	for _, l := range levelTable {
		// A.3.1 (f), (g): neither dimension may exceed sqrt(8 × MaxFS).
		side := int(math.Sqrt(float64(8 * l.maxFS)))
		if fs > l.maxFS || mbW > side || mbH > side ||
			fs*fps > l.maxMBPS || l.maxDPB < fs || kbps > l.maxBR {
			continue
		}
		return l.idc, nil
	}
	return 0, fmt.Errorf("h264synth: %dx%d macroblocks at %d fps exceed every H.264 level", mbW, mbH, fps)
}
