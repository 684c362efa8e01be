package failstore

// SetPause has w call pause between the steps of Open and Resolve.
func SetPause(w *Writer, pause func()) { w.pause = pause }

// SetGetInFlight sets how many reads Get keeps in flight, and returns a
// function that puts it back.
func SetGetInFlight(n int) (restore func()) {
	old := getInFlight
	getInFlight = n
	return func() { getInFlight = old }
}

// IndexSubject returns the index subject of a folded value's entry for the
// command under key.
func IndexSubject(form, key string) string { return indexSubject(form, key) }
