/* The `octet` subcommands. Each takes the arguments after its command words and returns the
 * process exit status (0 ok, 1 failure, 2 usage error). */
#ifndef OCTET_TRAINERS_COMMANDS_H
#define OCTET_TRAINERS_COMMANDS_H

int cmd_train_mlp(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_train_gpt(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);

#endif
