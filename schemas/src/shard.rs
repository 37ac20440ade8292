//! The contract between a row type and its shard folder.

use std::{fmt, str::FromStr, sync::Arc};

use arrow::datatypes::{Field, FieldRef, Schema};
use serde::{de::DeserializeOwned, Serialize};
use serde_arrow::schema::{SchemaLike, TracingOptions};

/// A row of one shard folder. The Arrow schema is traced from the type itself, so adding a
/// field to the struct changes the file format: bump [`ShardRow::VERSION`] when you do.
pub trait ShardRow: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// Folder name inside an iteration (`tasks`, `rollouts`, …).
    const FOLDER: &'static str;
    /// Schema version, stored in the Parquet key-value metadata and checked on read.
    const VERSION: u32;

    /// `"<folder>/<version>"`, e.g. `tasks/1`.
    fn schema_id() -> String {
        format!("{}/{}", Self::FOLDER, Self::VERSION)
    }

    /// Arrow fields of this row type: plain `Utf8` strings and `List` (not the large
    /// variants), which every Parquet reader maps to its ordinary string and list types.
    fn fields() -> Vec<FieldRef> {
        let options = TracingOptions::default()
            .strings_as_large_utf8(false)
            .sequence_as_large_list(false)
            .enums_without_data_as_strings(true);
        Vec::<FieldRef>::from_type::<Self>(options).unwrap_or_else(|err| {
            panic!("row type of {}/ cannot be traced to Arrow: {err}", Self::FOLDER)
        })
    }

    /// The Arrow schema, carrying the schema id as metadata.
    fn schema() -> Arc<Schema> {
        let fields: Vec<Field> = Self::fields().iter().map(|f| f.as_ref().clone()).collect();
        let metadata: std::collections::HashMap<String, String> =
            [(SCHEMA_KEY.to_string(), Self::schema_id())].into_iter().collect();
        Arc::new(Schema::new_with_metadata(fields, metadata))
    }
}

/// Key under which a shard's schema id is stored in the Parquet footer.
pub const SCHEMA_KEY: &str = "spice.schema";

/// Which part of a sharded stage this process runs: `--shard I/N`, `0 <= I < N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ShardSpec {
    pub index: u32,
    pub count: u32,
}

impl ShardSpec {
    pub const WHOLE: ShardSpec = ShardSpec { index: 0, count: 1 };

    /// Whether item `i` of a globally ordered list belongs to this part (round robin, so
    /// every part gets a similar mix of long and short items).
    pub fn owns(&self, i: usize) -> bool {
        i % self.count as usize == self.index as usize
    }

    /// File name of this part's Parquet shard: `part-00003.parquet`.
    pub fn part_file(&self) -> String {
        format!("part-{:05}.parquet", self.index)
    }

    /// File name of this part's manifest: `_manifest.json` when unsharded, else
    /// `_manifest.part-00003-of-00008.json`, so every part commits on its own.
    pub fn manifest_file(&self) -> String {
        if self.count == 1 {
            "_manifest.json".to_string()
        } else {
            format!("_manifest.part-{:05}-of-{:05}.json", self.index, self.count)
        }
    }
}

impl Default for ShardSpec {
    fn default() -> Self {
        Self::WHOLE
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for ShardSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("shard `{s}` is not I/N with 0 <= I < N (e.g. 0/4)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(ShardSpec { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_spec_parses_and_rejects() {
        assert_eq!("2/4".parse::<ShardSpec>().unwrap(), ShardSpec { index: 2, count: 4 });
        for bad in ["4/4", "1/0", "x/2", "3", "-1/2"] {
            assert!(bad.parse::<ShardSpec>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn shards_partition_items() {
        let parts: Vec<ShardSpec> = (0..3).map(|index| ShardSpec { index, count: 3 }).collect();
        for i in 0..100 {
            assert_eq!(parts.iter().filter(|p| p.owns(i)).count(), 1);
        }
        assert_eq!(ShardSpec::WHOLE.manifest_file(), "_manifest.json");
        assert_eq!(parts[1].manifest_file(), "_manifest.part-00001-of-00003.json");
    }
}
