package csvguard_test

import (
	"encoding/csv"
	"errors"
	"fmt"
	"strings"

	"github.com/penstock-ml/penstock/internal/csvguard"
)

// A CSV parser reads through Lines: CR-only line endings are read as lines,
// and a blank line between records is an error naming its line rather than
// a row that goes missing.
func ExampleLines() {
	in := "x\r1\r\r3\r"
	r := csv.NewReader(csvguard.NewLines(strings.NewReader(in), 1<<10))
	for {
		rec, err := r.Read()
		if err != nil {
			var ge *csvguard.Error
			if errors.As(err, &ge) {
				fmt.Printf("line %d: %v (blank line: %v)\n", ge.Line, ge.Err, errors.Is(err, csvguard.ErrBlankLine))
			}
			break
		}
		fmt.Println(rec)
	}
	// Output:
	// [x]
	// [1]
	// line 3: blank line between records (blank line: true)
}
