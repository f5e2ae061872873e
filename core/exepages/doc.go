// Package exepages trims a long-running process's resident set of the
// executable pages it touched only while starting (see Release). berthd
// and device plugins call it once they are up, so their resident memory
// is what they keep using.
package exepages
