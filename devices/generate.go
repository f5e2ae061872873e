package devices

//go:generate ./generate.sh
