// portero's pages' one script: a button marked data-webauthn asks the
// browser for a passkey (create or get) with the options the page holds,
// puts the answer in the form's field and posts the form. Nothing else
// runs; without it (or without passkeys) the forms work as they are.
document.querySelectorAll("button[data-webauthn]").forEach(function (button) {
  if (!window.PublicKeyCredential || !PublicKeyCredential.parseRequestOptionsFromJSON) {
    return;
  }
  button.hidden = false;
  button.addEventListener("click", async function () {
    var form = button.form;
    var status = document.getElementById("passkey-status");
    var options = JSON.parse(document.getElementById(button.dataset.options).textContent);
    try {
      var credential = button.dataset.webauthn === "create"
        ? await navigator.credentials.create({
            publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey),
          })
        : await navigator.credentials.get({
            publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey),
          });
      form.elements[button.dataset.field].value = JSON.stringify(credential.toJSON());
      form.submit();
    } catch (e) {
      status.textContent = button.dataset.failed + " (" + e.name + ")";
    }
  });
});
