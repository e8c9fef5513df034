// The `sisu` tool's commands on engine files: table files (NNNNNN.tbl) and database
// directories. inspect, verify and dump read the files offline, read-only (they never open
// the database, which would start a new WAL segment); get reads offline too; put and remove
// open the database as a user program would.
//
// Exit codes as for index files: 0 success, 1 a fault, damage, or (get) a missing key.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "index/index_file.h"

namespace sisu_tool {

using Json = nlohmann::ordered_json;

// What PATH is: a directory is a database; a file ending in a table footer is a table file;
// anything else is read as an index file.
enum class PathKind { kIndexFile, kTableFile, kDatabase };
PathKind classify(const std::string& path);

// Shared with the index-file commands in sisu.cc.
int fail(const std::string& path, const sisu::Status& s);
Json index_json(const sisu::IndexFile& file, std::size_t faults);
void print_index_block(const sisu::IndexFile& file, std::size_t faults, const char* indent);
std::string printable(std::string_view bytes);  // as is when printable ASCII, else 0x + hex

int inspect_table(const std::string& path, bool json);
int inspect_db(const std::string& dir, bool json);
int verify_table(const std::string& path);
int verify_db(const std::string& dir);
int dump_table(const std::string& path, std::uint64_t limit, bool json);
int dump_db(const std::string& dir, std::uint64_t limit, bool json);
int db_get(const std::string& dir, const std::string& key);
int db_put(const std::string& dir, const std::string& key, const std::string& value);
int db_remove(const std::string& dir, const std::string& key);

}  // namespace sisu_tool
