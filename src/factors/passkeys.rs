//! Passkeys (WebAuthn Level 3) through webauthn-rs: registration of a
//! discoverable credential with user verification required and no
//! attestation, and sign-in with one alone (no username typed: the
//! authenticator names its user by the handle it was registered with).
//! The relying party id is the issuer's (`rp_id`); the origin checked is
//! exactly `public_url`'s. The library refuses a sign count that goes
//! backwards (a cloned authenticator). Ceremony states are kept by the
//! caller (sealed into the page, and claimed once in the store).

use serde_json::Value;
use webauthn_rs::prelude::{
    AuthenticationResult, DiscoverableAuthentication, DiscoverableKey, Passkey,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn,
    WebauthnBuilder, WebauthnError,
};

/// One issuer's relying party.
pub struct RelyingParty {
    webauthn: Webauthn,
}

/// Why a ceremony failed, as the page and the log say it.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("the passkey's sign count went backwards: a copy of the authenticator may exist")]
    Cloned,
    #[error("the answer is not this ceremony's, this site's, or a passkey's: {0}")]
    Invalid(String),
}

impl From<WebauthnError> for Refused {
    fn from(e: WebauthnError) -> Refused {
        match e {
            WebauthnError::CredentialPossibleCompromise => Refused::Cloned,
            other => Refused::Invalid(other.to_string()),
        }
    }
}

impl RelyingParty {
    /// The relying party `rp_id` of the site at `public_url`, named `name`.
    pub fn new(rp_id: &str, public_url: &str, name: &str) -> Result<RelyingParty, Refused> {
        let origin = Url::parse(public_url).map_err(|e| Refused::Invalid(e.to_string()))?;
        let webauthn = WebauthnBuilder::new(rp_id, &origin)?
            .rp_name(name)
            .build()?;
        Ok(RelyingParty { webauthn })
    }

    /// A registration for the user `handle` (`login` shown as its name),
    /// excluding the credentials they have: the options for the browser
    /// and the state to keep. A discoverable credential is required (the
    /// library asks for one only where it may).
    pub fn start_registration(
        &self,
        handle: Uuid,
        login: &str,
        have: &[Passkey],
    ) -> Result<(Value, Value), Refused> {
        let exclude = have.iter().map(|p| p.cred_id().clone()).collect();
        let (options, state) =
            self.webauthn
                .start_passkey_registration(handle, login, login, Some(exclude))?;
        let mut options = json(&options);
        let selection = &mut options["publicKey"]["authenticatorSelection"];
        selection["residentKey"] = Value::from("required");
        selection["requireResidentKey"] = Value::from(true);
        Ok((options, json(&state)))
    }

    /// The passkey the browser's `answer` registered, checked against `state`.
    pub fn finish_registration(&self, answer: &str, state: &Value) -> Result<Passkey, Refused> {
        same_origin_only(answer)?;
        let answer: RegisterPublicKeyCredential = parse(answer)?;
        let state: PasskeyRegistration = from_value(state)?;
        Ok(self.webauthn.finish_passkey_registration(&answer, &state)?)
    }

    /// A sign-in by any passkey of this site: the options and the state.
    pub fn start_sign_in(&self) -> Result<(Value, Value), Refused> {
        let (options, state) = self.webauthn.start_discoverable_authentication()?;
        // A button starts it, not the username field's autofill.
        let mut options = json(&options);
        if let Some(o) = options.as_object_mut() {
            o.remove("mediation");
        }
        Ok((options, json(&state)))
    }

    /// The user handle and credential id an `answer` names, before it is
    /// checked: where to find the passkey to check it with.
    pub fn identify(&self, answer: &str) -> Result<(PublicKeyCredential, Uuid, Vec<u8>), Refused> {
        same_origin_only(answer)?;
        let answer: PublicKeyCredential = parse(answer)?;
        let (handle, id) = self
            .webauthn
            .identify_discoverable_authentication(&answer)?;
        let id = id.to_vec();
        Ok((answer, handle, id))
    }

    /// `answer` checked against `state` and the user's `passkey`: its
    /// signature, challenge, origin, relying party, user verification and
    /// sign count.
    pub fn finish_sign_in(
        &self,
        answer: &PublicKeyCredential,
        state: &Value,
        passkey: &Passkey,
    ) -> Result<AuthenticationResult, Refused> {
        let state: DiscoverableAuthentication = from_value(state)?;
        let key = DiscoverableKey::from(passkey);
        #[allow(deprecated)]
        let result = self
            .webauthn
            .finish_discoverable_authentication(answer, state, &[key])?;
        Ok(result)
    }
}

/// Refuses an answer whose client data says it was made in a frame of
/// another origin (`crossOrigin`, which webauthn-rs does not read): the
/// pages are never framed, so no honest answer says so.
fn same_origin_only(answer: &str) -> Result<(), Refused> {
    use base64::Engine;
    let answer: Value = parse(answer)?;
    let encoded = answer["response"]["clientDataJSON"]
        .as_str()
        .unwrap_or_default();
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let bytes = engine
        .decode(encoded.trim_end_matches('='))
        .map_err(|_| Refused::Invalid("clientDataJSON is not base64url".into()))?;
    let client_data: Value = serde_json::from_slice(&bytes)
        .map_err(|_| Refused::Invalid("clientDataJSON is not JSON".into()))?;
    match client_data["crossOrigin"].as_bool() {
        Some(true) => Err(Refused::Invalid("made in a frame of another origin".into())),
        _ => Ok(()),
    }
}

fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("WebAuthn options and states serialize")
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Refused> {
    serde_json::from_str(text).map_err(|e| Refused::Invalid(e.to_string()))
}

fn from_value<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, Refused> {
    serde_json::from_value(v.clone()).map_err(|e| Refused::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(client_data: &str) -> String {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(client_data);
        serde_json::json!({ "response": { "clientDataJSON": encoded } }).to_string()
    }

    #[test]
    fn an_answer_made_in_another_origins_frame_is_refused() {
        let framed = answer(r#"{"type":"webauthn.get","crossOrigin":true}"#);
        assert!(matches!(
            same_origin_only(&framed),
            Err(Refused::Invalid(_))
        ));
        let rp = RelyingParty::new("localhost", "http://localhost:8080", "t").unwrap();
        assert!(rp.identify(&framed).is_err());
        assert!(rp.finish_registration(&framed, &Value::Null).is_err());
        for fine in [
            r#"{"type":"webauthn.get","crossOrigin":false}"#,
            r#"{"type":"webauthn.get"}"#,
        ] {
            assert!(same_origin_only(&answer(fine)).is_ok(), "{fine}");
        }
        assert!(same_origin_only("{}").is_err(), "no client data");
    }
}
