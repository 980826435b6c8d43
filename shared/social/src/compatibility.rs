//! Compatibility between the caller's ready persona and someone else's public one; the scoring
//! rules are domain data (`domain::compatibility`).

use domain::compatibility::{compare, Compatibility, Side};
use personas::{versions, PersonaVersion};
use uuid::Uuid;

use crate::{Social, SocialError};

fn side(row: &PersonaVersion) -> anyhow::Result<Side> {
    match (row.archetype, row.stats) {
        (Some(archetype), Some(stats)) => Ok(Side { archetype, stats }),
        _ => anyhow::bail!("a persona with cards but without its synthesis"),
    }
}

impl Social {
    /// Compares the caller's newest ready persona with the public persona version `other`
    /// belongs to (its newest ready version).
    ///
    /// The caller's persona must be ready ([`SocialError::NotReady`]); `other` must be public
    /// ([`SocialError::NotFound`] otherwise, exactly like an unknown id). A version of the
    /// caller's own persona is refused with [`SocialError::OwnPersona`], public or not: a
    /// comparison with yourself says nothing (every gap is zero).
    pub async fn compatibility(
        &self,
        owner_id: Uuid,
        other: Uuid,
    ) -> Result<Compatibility, SocialError> {
        let client = self.connection().await?;
        let mine = versions::current(&client, owner_id)
            .await?
            .ok_or(SocialError::NotReady)?;
        if versions::load(&client, other)
            .await?
            .is_some_and(|row| row.owner_id == owner_id)
        {
            return Err(SocialError::OwnPersona);
        }
        let theirs = versions::current_public(&client, other)
            .await?
            .ok_or(SocialError::NotFound)?;
        Ok(compare(side(&mine)?, side(&theirs)?))
    }
}
