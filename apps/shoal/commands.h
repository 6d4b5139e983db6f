/* Subcommands of the shoal program. */
#ifndef SHOAL_APP_COMMANDS_H
#define SHOAL_APP_COMMANDS_H

int cmd_exec(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_put(int argc, char **argv);
int cmd_agent(int argc, char **argv);

#endif
