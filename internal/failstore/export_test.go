package failstore

// SetPause has w call pause between the steps of Open and Resolve.
func SetPause(w *Writer, pause func()) { w.pause = pause }
