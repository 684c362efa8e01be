package config

// ConsoleSettings returns the console's variables, read by the commands
// that serve it ('consumer console' and 'consumer dev') as a command's
// own settings (Flags' extra); they are the console's, not the service's,
// so that no deployment of the service is asked to set them.
func ConsoleSettings() []Setting {
	return []Setting{
		{Env: "CONSOLE_ADDR", Flag: "console-addr", Default: "127.0.0.1:8081", Usage: "address of the web console (without CONSOLE_USER and CONSOLE_PASSWORD: loopback only; dev: off for none)"},
		{Env: "CONSOLE_USER", Flag: "console-user", Usage: "the user who may sign in to the console"},
		{Env: "CONSOLE_PASSWORD", Flag: "console-password", Usage: "that user's password, at least 8 characters", Secret: true},
	}
}
