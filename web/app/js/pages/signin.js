// Signing in and creating an account.

import * as api from "../api.js";
import { h, replace } from "../dom.js";
import { form } from "../ui.js";

/**
 * @param {HTMLElement} main
 * @param {"signin" | "signup"} mode
 * @param {(user: api.User) => Promise<void>} done
 */
export function render(main, mode, done) {
  const signup = mode === "signup";
  const fields = [
    ...(signup ? [{ name: "name", label: "Your name", required: true, autocomplete: "name" }] : []),
    { name: "email", label: "Email", type: "email", required: true, autocomplete: "email" },
    {
      name: "password",
      label: "Password",
      type: "password",
      required: true,
      autocomplete: signup ? "new-password" : "current-password",
      hint: signup ? "At least 10 characters. A passphrase is best." : undefined,
    },
  ];
  replace(main,
    h("section", { class: "auth-card" },
      h("h1", { tabindex: "-1", text: signup ? "Create your Feen account" : "Sign in to Feen" }),
      h("p", { class: "lead", text: "Share your AI-provider keys without sharing the keys." }),
      form({
        fields,
        submitLabel: signup ? "Create account" : "Sign in",
        submit: async (v) => {
          const email = String(v.email), password = String(v.password);
          const user = signup ? await api.auth.register(String(v.name), email, password) : await api.auth.login(email, password);
          await done(user);
        },
      }),
      h("p", { class: "switch" },
        signup ? "Already have an account? " : "New to Feen? ",
        h("a", { href: signup ? "#/signin" : "#/signup", text: signup ? "Sign in" : "Create an account" }))));
  /** @type {HTMLElement | null} */ (main.querySelector("h1"))?.focus();
}
