package fakeclock_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/contactrelay/contactrelay/internal/fakeclock"
)

func TestClockMovesOnlyWhenTold(t *testing.T) {
	start := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	c := fakeclock.New(start)
	assert.Equal(t, start, c.Now(), "a new clock reads its start")
	assert.Equal(t, start, c.Now(), "and stands still")
	c.Advance(90 * time.Second)
	assert.Equal(t, start.Add(90*time.Second), c.Now(), "Advance moves it on")
	c.Advance(-time.Minute)
	assert.Equal(t, start.Add(30*time.Second), c.Now(), "a negative Advance moves it back")
	assert.True(t, new(fakeclock.Clock).Now().IsZero(), "the zero Clock reads the zero time")
}

func TestClockConcurrentUse(t *testing.T) {
	c := fakeclock.New(time.Time{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				c.Advance(time.Second)
				_ = c.Now()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, time.Time{}.Add(800*time.Second), c.Now(), "every Advance of every goroutine counts")
}
