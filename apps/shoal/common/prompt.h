/* Prompts for the shoal command (askpass or the terminal). */
#ifndef SHOAL_APP_PROMPT_H
#define SHOAL_APP_PROMPT_H

#include <stddef.h>

/* Fills buf; 0 on success. batch: never use the terminal. */
int prompt_secret(const char *prompt, int echo, int batch, char *buf, size_t bufsz);
/* Asks on the terminal; 1 for "yes". */
int prompt_yes_no(const char *question);

#endif
