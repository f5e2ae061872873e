// Package exepages trims a long-running process's resident set of the
// executable pages it touched only while starting or for a burst of work
// (see Release). Device plugins call it once they are up, berthd also
// once it is quiet after applying a playbook or importing an image, so
// their resident memory is what they keep using.
package exepages
