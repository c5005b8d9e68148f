// room placeholder; removed when the room has code
