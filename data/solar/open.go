package solar

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// sniffLines is how many leading lines Open inspects to recognize PVGIS.
const sniffLines = 40

// Open reads a PV history file, choosing the reader by content: a file whose
// first line starts with "Latitude (decimal degrees)" or that has a line
// starting with "time,P," among its first 40 is read as a PVGIS export
// (honoring only opt.MaxGapFillHours and, when > 0, opt.CapacityKW), any
// other file with ReadCSV(path, opt).
func Open(path string, opt CSVOptions) (*Series, error) {
	isPVGIS, err := sniffPVGIS(path)
	if err != nil {
		return nil, err
	}
	if !isPVGIS {
		return ReadCSV(path, opt)
	}
	opt, err = opt.withDefaults()
	if err != nil {
		return nil, err
	}
	return readPVGIS(path, opt.MaxGapFillHours, opt.CapacityKW)
}

func sniffPVGIS(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("open PV history: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for i := 0; i < sniffLines && sc.Scan(); i++ {
		text := strings.TrimPrefix(sc.Text(), "\ufeff")
		if (i == 0 && strings.HasPrefix(text, "Latitude (decimal degrees)")) || strings.HasPrefix(text, "time,P,") {
			return true, nil
		}
	}
	// A scan error (such as a very long first line) means it is not PVGIS;
	// ReadCSV reports whatever is wrong with the file.
	return false, nil
}
