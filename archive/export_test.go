package archive

// TakeEncodeSlots takes every encode slot, so that no file is encoded
// until the returned function gives them back.
func TakeEncodeSlots() (giveBack func()) {
	for range cap(encodeSlots) {
		encodeSlots <- struct{}{}
	}
	return func() {
		for range cap(encodeSlots) {
			<-encodeSlots
		}
	}
}
