//! Admin search terms, shaped for the trigram index.
//!
//! A search is a case-insensitive substring of name, username or email, answered by a trigram
//! index: Postgres intersects the posting lists of the term's trigrams. Trigrams that most users
//! share ("use", "com", "exa" of usernames and email domains) have posting lists as long as the
//! table, and walking them was most of a selective search's time at 1,000,000 users
//! (`like '%user7777%'`: 6.6 ms in the index, against 0.2 ms for `like '%r7777%'`, which finds
//! the same 1,120 candidate rows). So the index is asked for the longest part of the term made of
//! uncommon trigrams, and the rows it finds are checked for the whole term.
//!
//! Which trigrams are common is learnt from a sample of users ([`repo::common_trigrams`]) at
//! the first search of a process, then again in the background every [`REFRESH_EVERY`]. When
//! that fails no trigram counts as common and the whole term goes to the index.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::repo;

/// A trigram found in at least this share of users is common.
pub const COMMON_SHARE: f64 = 0.05;
/// The common trigrams are recomputed when older than this.
pub const REFRESH_EVERY: Duration = Duration::from_secs(3600);

/// A search term: what the index is asked for, and what every match must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerm {
    /// The term, lower-cased like the stored search text.
    pub lowered: String,
    /// The part of `lowered` given to the trigram index (all of it unless it has common trigrams).
    pub index_part: String,
}

impl SearchTerm {
    /// `lowered`: the term as Postgres `lower()` folds it (`repo::fold_like_search_text`).
    pub fn new(lowered: &str, common: &HashSet<String>) -> Self {
        let index_part = index_part(lowered, common).to_owned();
        Self { lowered: lowered.to_owned(), index_part }
    }

    /// The index's `like` pattern (wildcards in the term match literally).
    pub fn index_pattern(&self) -> String {
        format!("%{}%", escape_like(&self.index_part))
    }

    /// Whether rows found through the index must still be checked for the whole term.
    pub fn needs_full_check(&self) -> bool {
        self.index_part != self.lowered
    }
}

/// Escapes LIKE's wildcards so a search term matches literally.
fn escape_like(term: &str) -> String {
    term.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// The trigrams pg_trgm takes from the inside of a word: every three consecutive characters.
/// Words are runs of alphanumeric characters (pg_trgm's word characters).
fn words(text: &str) -> impl Iterator<Item = Vec<(usize, char)>> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 3).map(move |w| {
        let start = w.as_ptr() as usize - text.as_ptr() as usize;
        w.char_indices().map(|(i, c)| (start + i, c)).collect()
    })
}

fn is_common(window: &[(usize, char)], common: &HashSet<String>) -> bool {
    common.contains(&window.iter().map(|(_, c)| c).collect::<String>())
}

/// The whole term when none of its trigrams is common (or when all are: a broad term is answered
/// without the trigram index anyway); otherwise the longest substring of one of its words whose
/// trigrams are all uncommon. Every match of the term contains the returned part.
fn index_part<'a>(lowered: &'a str, common: &HashSet<String>) -> &'a str {
    if common.is_empty() {
        return lowered;
    }
    // (windows in the run, first byte, end byte) of the best run so far.
    let mut best: Option<(usize, usize, usize)> = None;
    let mut any_common = false;
    for word in words(lowered) {
        let mut run_start = 0;
        for (i, window) in word.windows(3).enumerate() {
            if is_common(window, common) {
                any_common = true;
                run_start = i + 1;
                continue;
            }
            let len = i + 1 - run_start;
            if best.is_none_or(|(best_len, _, _)| len > best_len) {
                let (last, c) = window[2];
                best = Some((len, word[run_start].0, last + c.len_utf8()));
            }
        }
    }
    match best {
        Some((_, start, end)) if any_common => &lowered[start..end],
        _ => lowered,
    }
}

/// The current common trigrams, refreshed in the background.
#[derive(Default)]
pub struct CommonTrigrams {
    slot: Mutex<(Option<Instant>, Arc<HashSet<String>>)>,
    refreshing: AtomicBool,
}

impl CommonTrigrams {
    /// The set as last computed. The first call computes it (0.3 – 0.5 s at 1,000,000 users,
    /// once per process; while that fails the set is empty: every search still works, on the
    /// whole term); later calls start a background recomputation when it is older than
    /// [`REFRESH_EVERY`].
    pub async fn current(self: &Arc<Self>, pool: &PgPool) -> Arc<HashSet<String>> {
        let (computed_at, set) = self.slot.lock().map(|s| s.clone()).unwrap_or_default();
        match computed_at {
            None => self.compute(pool).await,
            Some(at) if at.elapsed() > REFRESH_EVERY && !self.refreshing.swap(true, Ordering::AcqRel) => {
                let (this, pool) = (Arc::clone(self), pool.clone());
                tokio::spawn(async move {
                    this.compute(&pool).await;
                    this.refreshing.store(false, Ordering::Release);
                });
                set
            }
            Some(_) => set,
        }
    }

    /// Computes and keeps the set; on failure keeps the previous one (the next search retries).
    async fn compute(&self, pool: &PgPool) -> Arc<HashSet<String>> {
        match repo::common_trigrams(pool, COMMON_SHARE).await {
            Ok(trigrams) => {
                let set: Arc<HashSet<String>> = Arc::new(trigrams.into_iter().collect());
                tracing::debug!(count = set.len(), "common search trigrams computed");
                if let Ok(mut slot) = self.slot.lock() {
                    *slot = (Some(Instant::now()), Arc::clone(&set));
                }
                set
            }
            Err(error) => {
                tracing::warn!(%error, "computing the common search trigrams failed");
                self.slot.lock().map(|s| Arc::clone(&s.1)).unwrap_or_default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(trigrams: &[&str]) -> HashSet<String> {
        trigrams.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn common_trigrams_are_left_out_of_the_index_part() {
        let common = set(&["use", "ser", "er7", "exa", "xam", "amp", "mpl", "ple", "com", "gma", "mai", "ail"]);
        assert_eq!(index_part("user7777", &common), "r7777");
        assert_eq!(index_part("john.smith@gmail.com", &common), "smith");
        assert_eq!(index_part("user4242@example.com", &common), "er4242");
    }

    #[test]
    fn the_whole_term_when_nothing_or_everything_is_common() {
        let common = set(&["use", "ser"]);
        assert_eq!(index_part("garcia", &common), "garcia", "no common trigram");
        assert_eq!(index_part("user", &common), "user", "nothing uncommon to ask for");
        assert_eq!(index_part("us", &common), "us");
        assert_eq!(index_part("user7777", &HashSet::new()), "user7777", "not computed yet");
    }

    #[test]
    fn wildcards_in_a_term_match_literally() {
        let term = SearchTerm::new("50%_off\\", &HashSet::new());
        assert_eq!(term.index_pattern(), "%50\\%\\_off\\\\%");
        assert!(!term.needs_full_check());
        let term = SearchTerm::new("user7777", &set(&["use", "ser"]));
        assert_eq!((term.lowered.as_str(), term.index_part.as_str()), ("user7777", "er7777"));
        assert!(term.needs_full_check());
    }

    #[test]
    fn multibyte_words_are_cut_on_character_boundaries() {
        let common = set(&["mül", "üll"]);
        assert_eq!(index_part("müller", &common), "ller");
        assert_eq!(index_part("zürich", &set(&["zür"])), "ürich");
    }

    proptest! {
        /// Whatever is common, the index part is a substring of the term, so no match is lost.
        #[test]
        fn the_index_part_is_always_inside_the_term(
            term in "[a-zäöü0-9 .@_%-]{0,24}",
            common in proptest::collection::hash_set("[a-zäöü0-9]{3}", 0..40),
        ) {
            let lowered = term.to_lowercase();
            let part = index_part(&lowered, &common);
            prop_assert!(lowered.contains(part));
            prop_assert!(part == lowered || part.chars().count() >= 3);
        }
    }
}
